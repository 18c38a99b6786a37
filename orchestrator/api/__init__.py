"""REST API: FastAPI app, auth, routes and error handling."""
