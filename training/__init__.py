"""Training: run settings (`config`), one zi2zi iteration (`step`), the loop (`loop`) and its logs (`stats`)."""
