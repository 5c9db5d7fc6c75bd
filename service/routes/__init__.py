"""HTTP routes: health and metrics (never behind auth), matting (behind auth when on)."""
