"""Moderation: the content check every prompt and image passes before any model sees it.

Three kinds of check, run in the configured order (``--moderation words,model,remote``):

- ``words`` (:mod:`.words`): a word and regex list, matched case-insensitively on whole words;
- ``model`` (:mod:`.classifier`): a registered model asked with an editable prompt template,
  whose answer must start with SAFE or UNSAFE;
- ``remote`` (:mod:`.remote`): an OpenAI-style ``/moderations`` endpoint.

A blocked prompt is refused with a domain error (``content_policy_violation``), logged in the
``moderation_log`` table, and never reaches a model. :mod:`.service` holds the one
:class:`~.service.Moderator` both APIs call; :mod:`.log` the store writes, flagging included.
"""
