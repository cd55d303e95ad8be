"""Model metrics (zero-shot accuracy, retrieval recall) and search-pipeline evaluation."""
