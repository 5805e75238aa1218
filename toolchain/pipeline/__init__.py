"""`deploy pipeline run` and `deploy demo`: data -> train -> compress -> evaluate -> export -> bench -> plan -> report."""
