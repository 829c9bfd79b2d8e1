"""Build a small animated Cycles scene for Thresher's Blender examples and tests.

Run inside Blender::

    blender -b --factory-startup --python examples/make_blender_scene.py -- OUT.blend \
        [--frames 48] [--width 320] [--height 180] [--samples 8]

The scene has a ground plane, three coloured objects (one of them spinning), a sun light and a
camera circling the objects, renders with Cycles on the CPU without denoising (Debian's Blender
is built without OpenImageDenoise) and writes PNG frames to ``//render/frame_####``.
"""

from __future__ import annotations

import argparse
import math
import sys

import bpy


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(prog="make_blender_scene.py")
    parser.add_argument("output", help="the .blend file to write")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--samples", type=int, default=8)
    return parser.parse_args(args)


def material(name: str, rgba: tuple[float, float, float, float]) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = rgba
    return mat


def add(
    kind: str,
    name: str,
    location: tuple[float, float, float],
    mat: bpy.types.Material,
    **options: float,
) -> bpy.types.Object:
    getattr(bpy.ops.mesh, f"primitive_{kind}_add")(location=location, **options)
    obj = bpy.context.active_object
    obj.name = name
    obj.data.materials.append(mat)
    return obj


def build(options: argparse.Namespace) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, max(1, options.frames)

    add("plane", "Ground", (0, 0, 0), material("Ground", (0.8, 0.8, 0.75, 1)), size=12)
    spinner = add("cube", "Spinner", (0, 0, 1), material("Red", (0.8, 0.1, 0.1, 1)), size=1.4)
    add("uv_sphere", "Ball", (2.4, 0.6, 0.8), material("Blue", (0.1, 0.25, 0.9, 1)), radius=0.8)
    add("torus", "Ring", (-2.2, -0.8, 0.3), material("Green", (0.1, 0.7, 0.2, 1)))

    spinner.rotation_euler = (0, 0, 0)
    spinner.keyframe_insert("rotation_euler", frame=scene.frame_start)
    spinner.rotation_euler = (0, 0, math.radians(180))
    spinner.keyframe_insert("rotation_euler", frame=scene.frame_end)

    sun_data = bpy.data.lights.new("Sun", type="SUN")
    sun_data.energy = 3.0
    sun = bpy.data.objects.new("Sun", sun_data)
    sun.rotation_euler = (math.radians(40), math.radians(10), math.radians(30))
    scene.collection.objects.link(sun)

    world = bpy.data.worlds.new("Sky")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.45, 0.6, 0.85, 1)
    scene.world = world

    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    target = bpy.data.objects.new("Target", None)
    target.location = (0, 0, 0.8)
    scene.collection.objects.link(target)
    track = camera.constraints.new("TRACK_TO")
    track.target = target
    track.track_axis, track.up_axis = "TRACK_NEGATIVE_Z", "UP_Y"
    steps = 8
    for step in range(steps + 1):
        angle = math.radians(-30 + 60 * step / steps)
        camera.location = (9 * math.sin(angle), -9 * math.cos(angle), 4)
        frame = scene.frame_start + round((scene.frame_end - scene.frame_start) * step / steps)
        camera.keyframe_insert("location", frame=frame)

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = options.samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = options.width, options.height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = "//render/frame_####"


def main() -> None:
    options = parse_args(sys.argv)
    build(options)
    bpy.ops.wm.save_as_mainfile(filepath=options.output)


main()
