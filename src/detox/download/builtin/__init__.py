"""The embedded offline default: a template corpus and a tiny GPT-Neo taught it."""
