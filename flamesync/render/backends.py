"""Render backends: a rig posed for one frame in, an RGB image out.

``pyrender`` (default) rasterises with OpenGL through EGL or OSMesa, which on machines without a
GPU means Mesa's llvmpipe; ``pytorch3d`` renders with PyTorch3D (GPU, differentiable) when it is
installed. :func:`make_renderer` picks one by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError, MissingDependencyError, require
from . import camera as cam
from .rig import MATERIALS

INSTALL_RENDER = "pip install 'flamesync[render]'"
BACKENDS = ("pyrender", "pytorch3d")


class Renderer:
    """Interface of a backend.

    Parameters
    ----------
    rig : HeadRig
    width, height : int
        Image size in pixels.
    camera : str
        A preset name from :data:`flamesync.render.camera.PRESETS`.
    """

    name = "base"

    def __init__(self, rig, *, width: int, height: int, camera: str = "front", antialias: int | None = None):
        self.rig = rig
        self.width, self.height = int(width), int(height)
        self.camera = camera
        self.pose, self.yfov = cam.camera_pose(rig, camera, aspect=self.width / self.height)

    def render(self, posed: list) -> np.ndarray:
        """One frame: ``posed`` from :meth:`HeadRig.pose`; returns (height, width, 3) uint8 sRGB."""
        raise NotImplementedError

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------- pyrender
_GL_PLATFORMS = ("egl", "osmesa")
_PROBE = (
    "import os, sys; os.environ['PYOPENGL_PLATFORM'] = sys.argv[1]\n"
    "import pyrender\n"
    "r = pyrender.OffscreenRenderer(16, 16)\n"
    "s = pyrender.Scene(); s.add(pyrender.PerspectiveCamera(yfov=1.0))\n"
    "r.render(s); r.delete()\n"
)


def choose_gl_platform() -> str:
    """Set ``PYOPENGL_PLATFORM`` to a headless platform that works here and return it.

    Respects a value the user set. Otherwise tries EGL, then OSMesa, each in a throwaway process
    (PyOpenGL fixes its platform at import, so a failed try would poison this one). The choice
    goes into the environment, so worker processes inherit it.
    """
    import importlib.util

    if importlib.util.find_spec("pyrender") is None:  # not imported here: that would fix the platform
        require("pyrender", feature="preview rendering", install=INSTALL_RENDER)
    chosen = os.environ.get("PYOPENGL_PLATFORM")
    if chosen:
        return chosen
    if "OpenGL" in sys.modules:  # too late to choose; whatever PyOpenGL picked must do
        return "default"
    errors = []
    for platform in _GL_PLATFORMS:
        try:
            res = subprocess.run([sys.executable, "-c", _PROBE, platform], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            errors.append(f"{platform}: timed out")
            continue
        if res.returncode == 0:
            os.environ["PYOPENGL_PLATFORM"] = platform
            return platform
        last = (res.stderr.strip().splitlines() or ["failed"])[-1]
        errors.append(f"{platform}: {last}")
    raise MissingDependencyError(
        "no headless OpenGL found for the pyrender backend (" + "; ".join(errors) + "); install "
        "Mesa's EGL or OSMesa (apt-get install libegl1 libosmesa6) or use --backend pytorch3d"
    )


_MSAA = {"samples": 4}


def _patch_msaa(samples: int) -> None:
    """Make pyrender use ``samples`` MSAA samples instead of its fixed 4.

    On llvmpipe 4x multisampling (which it also uses when asked for 2x) doubles the frame time,
    so previews on a CPU default to none.
    """
    import pyrender.renderer as prr

    if not hasattr(prr, "_flamesync_orig_rbsm"):
        prr._flamesync_orig_rbsm = prr.glRenderbufferStorageMultisample

        def storage(target, _samples, *args):
            return prr._flamesync_orig_rbsm(target, _MSAA["samples"], *args)

        prr.glRenderbufferStorageMultisample = storage
    _MSAA["samples"] = int(samples)


SHADER_DIR = Path(__file__).parent / "shaders"


def _fast_program_cache():
    """pyrender's shader cache, handing out our lean mesh shaders instead of its PBR ones."""
    from pyrender.shader_program import ShaderProgramCache

    class FastShaders(ShaderProgramCache):
        def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
            if vertex_shader == "mesh.vert" and fragment_shader == "mesh.frag":
                vertex_shader = str(SHADER_DIR / "mesh_fast.vert")
                fragment_shader = str(SHADER_DIR / "mesh_fast.frag")
            return super().get_program(vertex_shader, fragment_shader, geometry_shader, defines)

    return FastShaders()


class PyrenderRenderer(Renderer):
    """OpenGL rendering with pyrender, headless.

    ``shader="fast"`` (default) shades with flamesync's lean preview shader, about 2.5x faster
    than pyrender's physically based one on llvmpipe; ``"pbr"`` keeps pyrender's.
    """

    name = "pyrender"

    def __init__(self, rig, *, width, height, camera="front", antialias=None, shader="fast"):
        super().__init__(rig, width=width, height=height, camera=camera)
        choose_gl_platform()
        pyrender = require("pyrender", feature="preview rendering", install=INSTALL_RENDER)
        self._pr = pyrender
        self.scene = pyrender.Scene(bg_color=[*cam.BACKGROUND, 1.0], ambient_light=[cam.AMBIENT] * 3)
        # one draw call per material, not per part: pyrender's per-primitive overhead (uniforms,
        # lights) is a sizeable share of a frame on a CPU
        self.groups: dict[str, list[int]] = {}
        for i, part in enumerate(rig.parts):
            self.groups.setdefault(part.material, []).append(i)
        self.meshes = []
        posed = self._grouped(rig.pose(rig.template))
        for (name, idx), (pos, nrm) in zip(self.groups.items(), posed):
            m = MATERIALS[name]
            material = pyrender.MetallicRoughnessMaterial(
                baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=m["metallic"], roughnessFactor=m["roughness"],
            )
            colors = np.concatenate([rig.parts[i].colors for i in idx])
            offsets = np.cumsum([0] + [len(rig.parts[i].colors) for i in idx])
            faces = np.concatenate([rig.parts[i].faces + o for i, o in zip(idx, offsets)])
            rgba = np.concatenate([colors, np.ones((len(colors), 1), np.float32)], 1)
            prim = pyrender.Primitive(positions=pos, normals=nrm, color_0=rgba, indices=faces,
                                      material=material, mode=pyrender.constants.GLTF.TRIANGLES)
            self.scene.add(pyrender.Mesh([prim]))
            self.meshes.append((prim, rgba))
        span = rig.head_size
        dist = float(np.linalg.norm(self.pose[:3, 3] - rig.landmarks["head_centre"]))
        camera_obj = pyrender.PerspectiveCamera(
            yfov=self.yfov, aspectRatio=self.width / self.height,
            znear=max(1e-3, dist - 2 * span), zfar=dist + 2 * span,
        )
        self.scene.add(camera_obj, pose=self.pose)
        for light, pose in cam.light_poses(self.pose):
            self.scene.add(pyrender.DirectionalLight(color=light["color"], intensity=light["intensity"]), pose=pose)
        try:
            self.renderer = pyrender.OffscreenRenderer(self.width, self.height)
        except Exception as exc:  # no usable GL context: a setup problem, not a bug
            hint = ("set PYOPENGL_PLATFORM=egl (or osmesa) before anything imports pyrender or OpenGL"
                    if os.environ.get("PYOPENGL_PLATFORM") is None else
                    "install Mesa's EGL or OSMesa (apt-get install libegl1 libosmesa6)")
            raise MissingDependencyError(
                f"cannot open a headless OpenGL context ({exc.__class__.__name__}: {exc}); {hint}"
            ) from None
        from OpenGL.GL import GL_RENDERER, glGetString

        self.gl_renderer = (glGetString(GL_RENDERER) or b"").decode(errors="replace")
        self.software = any(k in self.gl_renderer.lower() for k in ("llvmpipe", "softpipe", "swrast"))
        if antialias is None:  # MSAA doubles a software rasteriser's frame time; on a GPU it is free
            antialias = 0 if self.software else 4
        _patch_msaa(antialias)  # before the first render, which creates the framebuffers
        self.antialias = int(antialias)
        if shader == "fast":
            self.renderer._renderer._program_cache = _fast_program_cache()
        elif shader != "pbr":
            raise InputError(f"unknown shader {shader!r}; use 'fast' or 'pbr'")

    def render(self, posed):
        self._upload(posed)
        color, _ = self.renderer.render(self.scene)
        return np.ascontiguousarray(color[..., :3])

    def _grouped(self, posed):
        return [(np.concatenate([posed[i][0] for i in idx]), np.concatenate([posed[i][1] for i in idx]))
                for idx in self.groups.values()]

    def _upload(self, posed):
        from OpenGL.GL import GL_ARRAY_BUFFER, glBindBuffer, glBufferSubData

        self.renderer._platform.make_current()
        for (prim, rgba), (pos, nrm) in zip(self.meshes, self._grouped(posed)):
            if prim._vaid is None:  # not yet on the GPU: the next render uploads these
                prim.positions, prim.normals = pos, nrm
                continue
            # same layout pyrender used when it created the buffer: position, normal, colour
            data = np.ascontiguousarray(np.hstack([pos, nrm, rgba]), np.float32)
            glBindBuffer(GL_ARRAY_BUFFER, prim._buffers[0])
            glBufferSubData(GL_ARRAY_BUFFER, 0, data.nbytes, data)

    def close(self):
        if getattr(self, "renderer", None) is not None:
            self.renderer.delete()
            self.renderer = None


# ---------------------------------------------------------------------------- pytorch3d
class PyTorch3DRenderer(Renderer):
    """Rendering with PyTorch3D: on the GPU when there is one, differentiable.

    Only the key light of the three-point rig is used (PyTorch3D's Phong shader takes one light);
    the fill is folded into a stronger ambient term.
    """

    name = "pytorch3d"

    def __init__(self, rig, *, width, height, camera="front", antialias=None):
        super().__init__(rig, width=width, height=height, camera=camera)
        hint = "PyTorch3D is not on PyPI; see https://github.com/facebookresearch/pytorch3d/blob/main/INSTALL.md"
        r = require("pytorch3d.renderer", feature="the pytorch3d render backend", install=hint)
        structures = require("pytorch3d.structures", feature="the pytorch3d render backend", install=hint)
        import torch

        self.torch, self.r, self.structures = torch, r, structures
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        flip = np.diag([-1.0, 1.0, -1.0])  # OpenGL camera axes to PyTorch3D's (x left, z forward)
        w2c = np.linalg.inv(self.pose)
        rot = torch.tensor((flip @ w2c[:3, :3]).T[None], dtype=torch.float32, device=self.device)
        trans = torch.tensor((flip @ w2c[:3, 3])[None], dtype=torch.float32, device=self.device)
        cameras = r.FoVPerspectiveCameras(device=self.device, R=rot, T=trans, fov=float(np.rad2deg(self.yfov)),
                                          aspect_ratio=self.width / self.height)
        key = cam.light_poses(self.pose)[0][1]
        lights = r.DirectionalLights(
            device=self.device, direction=torch.tensor(key[None, :3, 2], dtype=torch.float32),
            ambient_color=((cam.AMBIENT + 0.25,) * 3,), diffuse_color=((0.75,) * 3,), specular_color=((0.25,) * 3,),
        )
        raster = r.RasterizationSettings(image_size=(self.height, self.width), blur_radius=0.0, faces_per_pixel=1)
        blend = r.BlendParams(background_color=cam.BACKGROUND)
        self.renderer = r.MeshRenderer(
            rasterizer=r.MeshRasterizer(cameras=cameras, raster_settings=raster),
            shader=r.HardPhongShader(device=self.device, cameras=cameras, lights=lights, blend_params=blend),
        )
        faces, offset = [], 0
        for part in rig.parts:
            faces.append(part.faces + offset)
            offset += len(part.colors)
        self.faces = torch.tensor(np.concatenate(faces), dtype=torch.int64, device=self.device)
        self.colors = torch.tensor(np.concatenate([p.colors for p in rig.parts]), device=self.device)

    def render(self, posed):
        torch = self.torch
        verts = torch.tensor(np.concatenate([p for p, _ in posed]), device=self.device)
        mesh = self.structures.Meshes(verts=[verts], faces=[self.faces],
                                      textures=self.r.TexturesVertex(verts_features=[self.colors]))
        with torch.no_grad():
            img = self.renderer(mesh)[0, ..., :3].clamp(0, 1)
        img = img ** (1 / 2.2)  # colours are linear; the video is sRGB
        return (img * 255 + 0.5).byte().cpu().numpy()


def make_renderer(backend: str, rig, *, width: int, height: int, camera: str = "front", antialias: int | None = None,
                  **options) -> Renderer:
    """Instantiate a backend by name (``"pyrender"`` or ``"pytorch3d"``); ``options`` go to its class."""
    classes = {"pyrender": PyrenderRenderer, "pytorch3d": PyTorch3DRenderer}
    if backend not in classes:
        raise InputError(f"unknown render backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    cam.preset(camera)  # fail early on a bad camera name
    return classes[backend](rig, width=width, height=height, camera=camera, antialias=antialias, **options)


def available_backends() -> dict[str, str]:
    """Backend name to ``"ok"`` or the reason it cannot be used here (imports only, no GL probe)."""
    import importlib.util

    out = {}
    for name, module in (("pyrender", "pyrender"), ("pytorch3d", "pytorch3d")):
        out[name] = "ok" if importlib.util.find_spec(module) is not None else f"module '{module}' not installed"
    return out


__all__ = ["Renderer", "PyrenderRenderer", "PyTorch3DRenderer", "make_renderer", "available_backends",
           "choose_gl_platform", "BACKENDS"]
