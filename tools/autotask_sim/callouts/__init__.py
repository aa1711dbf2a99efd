"""Callouts: change events, which webhooks they fire, signed bodies, delivery with retries."""
