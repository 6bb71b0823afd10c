"""Blender-side machinery the operators share: the job life cycle, the engine session, bulk data, render setup, settings restore, live preview, version compatibility."""
