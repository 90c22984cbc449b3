"""The reference limit: Litestar's own JSON hello-world, served the same way as the app."""

from litestar import Litestar, get


@get("/json", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


app = Litestar(route_handlers=[hello])
