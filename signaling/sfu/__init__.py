"""Large rooms through a native SFU (Janus VideoRoom): Roundtable is the only door to it."""
