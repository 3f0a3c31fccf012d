"""Import every mmrs module so registries are filled, and set the default scope."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register all mmrs modules into the mmrs registries.

    Args:
        init_default_scope: Whether to make ``'mmrs'`` the current default scope, so that
            configs without ``default_scope`` still resolve bare type names in mmrs.
    """
    import mmrs.datasets  # noqa: F401
    import mmrs.engine  # noqa: F401
    import mmrs.evaluation  # noqa: F401
    import mmrs.models  # noqa: F401
    import mmrs.structures  # noqa: F401
    import mmrs.visualization  # noqa: F401

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('mmrs'):
        if current is not None and current.scope_name != 'mmrs':
            warnings.warn(f'The current default scope "{current.scope_name}" is not '
                          '"mmrs"; register_all_modules creates a new "mmrs" scope.')
        name = f'mmrs-{datetime.datetime.now()}'
        DefaultScope.get_instance(name, scope_name='mmrs')
