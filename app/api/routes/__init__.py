"""HTTP routes, one module per area."""


def v1_routers() -> list:
    """Every /v1 router, in the order they appear in the OpenAPI schema."""
    from app.api.routes import documents, rerank, search

    return [
        search.router,
        rerank.router,
        documents.router,
    ]
