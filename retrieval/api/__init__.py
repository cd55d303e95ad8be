"""The HTTP API (``vitrieve serve``): FastAPI routes over the same engine as the CLI and UI.

Modules: ``app`` builds the application, ``libraries`` holds the opened libraries, ``schemas``
the request and response models, ``errors`` the JSON error shape, ``auth`` the API keys,
``metrics`` Prometheus, and one ``*_routes`` module per area. Routes call ``retrieval`` only
(Library, Searcher, ZeroShotClassifier, jobs, uploads, export): there is no second search path.
"""
