from .export import export_student

__all__ = ['export_student']
