"""The OpenAI wire protocol: request and response schemas, and the SSE stream encoder."""
