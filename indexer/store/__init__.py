"""The SQL side of a library: schema and migrations, the MetadataStore, filter queries, API keys."""
