"""edge-ad training side: datasets, synthetic plant, autoencoder, scoring, reports."""
