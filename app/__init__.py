"""Sealdrop: share files through encrypted links that expire."""
