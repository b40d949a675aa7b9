"""Sequence to sequence (translation, summaries): pairs, teacher forcing, decoding, BLEU/chrF/ROUGE, the task entry."""
