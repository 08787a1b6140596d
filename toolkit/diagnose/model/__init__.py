"""Model-pathway diagnostics: performance, calibration, estimation, prediction shift, OOD inputs."""
