"""What every layer shares about a run before anything is computed: its config (method, dataset,
preset, seed, the method's settings and the run's), the presets and latent sizes, and the seeds
of its random streams. The bottom layer of bench/ above the utilities: it imports no other layer
(docs/architecture.md)."""
