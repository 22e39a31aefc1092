"""edge-ad: hear a machine fail. The light side: features, bundle, runtime (numpy only)."""
__version__ = "0.1.0"
