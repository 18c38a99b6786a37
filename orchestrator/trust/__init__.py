"""Trust boundaries for what a tenant's job may read: data roots, weights references, data.yaml.

Pure policy (standard library, pydantic and PyYAML only), used by the service at submit time
and again by the worker before it touches a file: ``roots`` (local paths and gs:// prefixes a
tenant may read), ``weights`` (the accepted forms of ``model_params.weights``) and
``data_yaml`` (our own parser and sanitiser of a dataset's data.yaml); ``checks`` applies them
at submit time against the backend (store, registry, Settings).
"""
