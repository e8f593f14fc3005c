"""The models: the models file (``spec``), the engine factory (``factory``), the live registry
(``core``) and the generation entry point both APIs call (``generate``)."""
