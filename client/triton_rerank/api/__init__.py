"""The rerank HTTP API (``triton-rerank api``): Cohere's, Jina's / vLLM's and TEI's rerank routes in
front of Triton, for the clients of the retrieval ecosystem (the cohere SDK, LangChain, LlamaIndex,
Haystack, Dify, Milvus' own rerankers). ``app.create_app(settings)`` is the ASGI app; it needs the
``api`` extra (Starlette, uvicorn, prometheus-client); ``settings`` needs nothing.
"""
