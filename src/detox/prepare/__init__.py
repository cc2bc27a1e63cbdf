"""The prepare stage: prompt sets from the downloaded tables."""
