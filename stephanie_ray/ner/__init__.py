"""NER retriever: entities detected in scorables' texts, embedded type-aware, indexed in Annoy, calibrated per
domain and linked into a knowledge graph (after "NER Retriever: Zero-Shot Named Entity Retrieval with Type-Aware
Embeddings", arXiv 2509.04011).

Modules, each one job:

* ``text`` — pure text helpers: fenced code blocks, script shares, chunks with overlap, snippets, normalisation.
* ``rules`` — the rule-based detector for technical chats (pure regexes).
* ``detect`` — the detector registry (rules, spacy, hf) and the chain: chunking, merging, overlap resolution.
* ``labels`` — the label registry: each detector label's type descriptions (the projection's anchors).
* ``spans`` — the span embedder: a layer's (or sub-module's) hidden states pooled over each span.
* ``projection`` — the projection network, its triplet training with hard negatives, versioned storage.
* ``index`` — the Annoy index over projected vectors with its metadata, built in one pass from stored vectors.
* ``calibration`` — per-domain similarity calibration (reusing ``training/calibration.py``).
* ``retriever`` — ``retrieve_entities(query, k, min_similarity, domain)``.
* ``graph`` — entity nodes, mentions and co-occurrence edges in the database, and their queries.
* ``worker`` / ``stage`` — detection + embedding per batch (Ray Data actor pool) and the pipeline stage.
"""
