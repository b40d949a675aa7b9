"""Semantic matching: sentence embeddings, contrastive loss, similarity and retrieval scores, the task entry."""
