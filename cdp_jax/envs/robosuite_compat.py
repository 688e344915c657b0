"""robosuite 1.5.2 on the project's mujoco (4.x): the three known breaks, mended at import, without editing it.

robosuite 1.5.x was written for mujoco < 3.10 (upstream fix: robosuite PR #814, unreleased). On mujoco >= 3.10:

1. ``mujoco.mj_fullM`` takes ``(model, data, dst)`` instead of ``(model, dst, data.qM)`` (3.10), and
2. ``MjData.qM`` is gone (3.11), so the controllers' mass-matrix update fails;
3. pybind enums no longer compare equal to numpy integers (3.12), so ``joint_type == mjtJoint.mjJNT_FREE`` is
   always false and robosuite's joint-address lookups assert.

:func:`patch` gives robosuite's controller module an ``mj_fullM`` with the old argument order (its third argument
is the raw ``MjData``, which robosuite's data wrapper now hands out as ``qM``), and gives its binding module a
``mjtJoint`` of plain integers. Both touch only robosuite's own module references; mujoco itself is unchanged.
Installed by ``pip install -e ".[robomimic]"``: robosuite 1.5.2 with ``--no-deps`` (its ``mink==0.0.5`` pin would
pull numpy < 2; ``mink`` serves only the GR1 whole-body IK, which the Robomimic tasks do not use).
"""
from __future__ import annotations

import logging
import types

_PATCHED = False
INSTALL_HINT = 'pip install --no-deps robosuite==1.5.2 && pip install -e ".[robomimic]"  (see docs/robomimic.md)'


class RobosuiteMissing(ValueError, ImportError):
    """robosuite (or a dependency) cannot be imported; the message names the install command."""


class RenderingUnavailable(ValueError):
    """The OpenGL backend named by ``MUJOCO_GL`` cannot start; the message names it and the packages."""


def rendering_unavailable(error: BaseException) -> RenderingUnavailable:
    import os
    return RenderingUnavailable(
        f"offscreen rendering failed with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} ({type(error).__name__}: "
        f"{str(error).splitlines()[0][:100] if str(error) else ''}): use MUJOCO_GL=egl (GPU or llvmpipe; Debian: "
        f"apt install libegl1 libgl1-mesa-dri) or MUJOCO_GL=osmesa (apt install libosmesa6)")


def is_gl_error(error: BaseException) -> bool:
    import traceback
    text = "".join(traceback.format_exception(error)).lower()
    return any(word in text for word in ("opengl", "egl", "osmesa", "glcontext", "gl_context", "mujoco_gl"))


class _MujocoView(types.ModuleType):
    """The ``mujoco`` module with some attributes replaced, for one robosuite module's global name."""

    def __init__(self, base, **overrides):
        super().__init__("mujoco")
        self.__dict__.update(overrides)
        self._base = base

    def __getattr__(self, name):
        return getattr(self._base, name)


def _int_enum(enum_type) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: int(value) for name, value in enum_type.__members__.items()})


def patch():
    """Imports robosuite with the mujoco >= 3.10 fixes applied (idempotent); returns the robosuite module.
    Raises :class:`RobosuiteMissing` (a ValueError, so entry points print it as one line) naming the install
    command when robosuite is not installed, and :class:`RenderingUnavailable` naming ``MUJOCO_GL`` when the
    OpenGL backend it names cannot start."""
    global _PATCHED
    logging.disable(logging.WARNING)           # robosuite's import-time advice (macro file, optional models, mink)
    try:
        import mujoco
        import robosuite
        import robosuite.controllers.parts.controller as controller
        import robosuite.utils.binding_utils as binding
    except ImportError as err:
        if is_gl_error(err):
            raise rendering_unavailable(err) from None
        raise RobosuiteMissing(f"robosuite is not installed ({err}); install it with: {INSTALL_HINT}") from None
    except (AttributeError, OSError, RuntimeError) as err:      # mujoco's import starts the MUJOCO_GL backend
        if is_gl_error(err):
            raise rendering_unavailable(err) from None
        raise
    finally:
        logging.disable(logging.NOTSET)
    logging.getLogger("robosuite_logs").setLevel(logging.ERROR)    # its per-environment INFO and config notices
    if _PATCHED or not hasattr(mujoco.MjData, "M") or hasattr(mujoco.MjData, "qM"):
        _PATCHED = True
        return robosuite
    controller.mujoco = _MujocoView(mujoco, mj_fullM=lambda model, dst, data: mujoco.mj_fullM(model, data, dst))
    binding.MjData.qM = property(lambda self: self._data)
    binding.mujoco = _MujocoView(mujoco, mjtJoint=_int_enum(mujoco.mjtJoint))
    _PATCHED = True
    return robosuite
