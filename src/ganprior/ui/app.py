"""The page: Gradio components and which :class:`~ganprior.ui.handlers.Studio` handler each button calls.

Element ids (``elem_id``) are stable names the browser test drives.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ganprior.methods import PRESETS, available_methods
from ganprior.ui.handlers import Studio
from ganprior.ui.inputs import HOLE_COLOR, TASK_ORDER

INTRO = ("Upload a degraded image (or pick a held-out example), paint the holes with the brush "
         "(erase with the eraser), choose the task and the method, and press **Run**.")


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def build_app(studio: Studio) -> gr.Blocks:
    """The Blocks app for ``studio`` (not launched)."""
    with gr.Blocks(title="ganprior") as app:
        gr.Markdown(f"## ganprior — restore with a GAN prior · model: `{studio.model_label}`\n{INTRO}")
        reference = gr.State(None)
        last = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                editor = gr.ImageEditor(
                    label="Image (paint = hole)", elem_id="editor", format="png", image_mode="RGBA", type="numpy",
                    sources=(), transforms=(), layers=False, height=420,
                    brush=gr.Brush(default_size=3, colors=[HOLE_COLOR], color_mode="fixed"),
                    eraser=gr.Eraser(default_size=3))
                with gr.Row():
                    upload = gr.File(label="Upload an image (any size)", file_types=["image"], elem_id="upload")
                    with gr.Column():
                        example = gr.Dropdown([(label, i) for i, (label, _) in enumerate(studio.examples)], value=None,
                                              label="…or a held-out example", filterable=True, elem_id="example")
                        degrade_btn = gr.Button("Simulate the ticked degradations on it", elem_id="degrade")
                with gr.Row():
                    center_btn = gr.Button("Centre hole", elem_id="mask-center")
                    box = gr.Textbox(label="Box x0,y0,x1,y1", placeholder="8,8,24,20", elem_id="mask-box-spec")
                    box_btn = gr.Button("Box hole", elem_id="mask-box")
            with gr.Column(scale=2):
                tasks = gr.CheckboxGroup(list(TASK_ORDER), value=["inpaint"], label="Task (composed in this order)",
                                         elem_id="tasks")
                with gr.Row():
                    sr_factor = gr.Dropdown([2, 4, 8], value=4, label="SR factor", elem_id="sr-factor")
                    method = gr.Dropdown(available_methods(), value="cri", label="Method", elem_id="method")
                    preset = gr.Dropdown(list(PRESETS), value="official", label="Preset", elem_id="preset")
                with gr.Row():
                    steps = gr.Number(value=50, precision=0, label="Step cap per stage (0 = preset)",
                                      elem_id="steps")
                    seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                    samples = gr.Number(value=1, precision=0, label="Samples (K restorations)", elem_id="samples")
                classes = gr.Dropdown(studio.class_choices(), value=-1, label="Class (type to search)",
                                      filterable=True, elem_id="class")
                with gr.Row():
                    run_btn = gr.Button("Run", variant="primary", elem_id="run")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                status = gr.Markdown("Load an image to start.", elem_id="status")
                preview = gr.Image(label="Live preview", elem_id="preview", interactive=False, height=260)
        with gr.Row():
            compare = gr.ImageSlider(label="Before | after (drag)", elem_id="compare", interactive=False)
            with gr.Column():
                result = gr.Image(label="Restored", elem_id="result", interactive=False)
                overlay = gr.Radio(["none", "uncertainty", "hallucination"], value="none", elem_id="overlay",
                                   label="Overlay (with Samples > 1): where the samples differ / what the prior added")
            with gr.Column():
                summary = gr.Markdown(elem_id="summary")
                downloads = gr.File(label="Downloads: restored image, run folder (zip)", file_count="multiple",
                                    elem_id="downloads", interactive=False)
        sample_gallery = gr.Gallery(label="Samples: each reproduces the observation; they differ where it is silent",
                                    elem_id="samples-gallery", columns=8, height=180)
        views = gr.State({})
        with gr.Accordion("Manipulate the restoration (DGP): jitter, morph, category transfer", open=True):
            with gr.Row():
                jitter_n = gr.Number(value=6, precision=0, label="Jitter: variants", elem_id="jitter-n")
                jitter_std = gr.Slider(0.0, 1.5, value=0.3, label="Jitter: std", elem_id="jitter-std")
                jitter_btn = gr.Button("Jitter", elem_id="jitter")
            with gr.Row():
                morph_example = gr.Dropdown([(label, i) for i, (label, _) in enumerate(studio.examples)], value=None,
                                            label="Morph towards example", filterable=True, elem_id="morph-example")
                morph_upload = gr.File(label="…or upload the second image", file_types=["image"], elem_id="morph-upload")
                morph_frames = gr.Number(value=7, precision=0, label="Frames", elem_id="morph-frames")
                morph_btn = gr.Button("Morph", elem_id="morph")
            with gr.Row():
                targets = gr.Dropdown(studio.class_choices()[1:], multiselect=True, label="Transfer to classes",
                                      elem_id="transfer-classes")
                transfer_btn = gr.Button("Transfer", elem_id="transfer")
            manip_status = gr.Markdown(elem_id="manip-status")
            gallery = gr.Gallery(label="Manipulations", elem_id="gallery", columns=8, height=220)

        def load(path):
            value, image, message = studio.load_file(path)
            return value, image, message, gr.skip() if value is not None else None  # a refused file is cleared

        upload.upload(load, upload, [editor, reference, status, upload])
        example.input(studio.load_example, example, [editor, reference, status])
        center_btn.click(lambda v: studio.mask_preset(v, "center", ""), editor, [editor, status])
        box_btn.click(lambda v, b: studio.mask_preset(v, "box", b), [editor, box], [editor, status])
        degrade_btn.click(studio.degrade, [editor, tasks, sr_factor, seed], [editor, status])

        named = {"status": status, "preview": preview, "compare": compare, "result": result, "summary": summary,
                 "downloads": downloads, "state": last, "samples": sample_gallery, "views": views}

        def run(value, tasks_, sr, method_, preset_, steps_, seed_, cls, ref, k, request: gr.Request):
            for update in studio.run(_session(request), value, tasks_, sr, method_, preset_, steps_, seed_, cls, ref,
                                     k):
                yield {named[key]: v for key, v in update.items()}

        run_btn.click(run, [editor, tasks, sr_factor, method, preset, steps, seed, classes, reference, samples],
                      list(named.values()), concurrency_limit=None, show_progress="hidden")
        overlay.change(lambda choice, shown: shown.get(choice, shown.get("none")) if shown else None,
                       [overlay, views], result, show_progress="hidden")
        def stop(request: gr.Request):
            return studio.stop(_session(request))

        stop_btn.click(stop, None, status, concurrency_limit=None, show_progress="hidden")

        def other_image(example_index: Any, path: Any) -> Any:
            if path:
                from ganprior.ui.inputs import load_upload

                return load_upload(path)
            return studio.examples[int(example_index)][1] if example_index is not None else None

        def morph(res, example_index, path, frames, method_, steps_, seed_):
            try:
                other = other_image(example_index, path)
            except ValueError as exc:
                return None, f"**Error:** {exc}"
            cap = int(steps_) if steps_ and int(steps_) > 0 else None
            return studio.manipulate("morph", res, other=other, frames=frames, method=method_, steps=cap,
                                     seed=int(seed_ or 0))

        manip_out = [gallery, manip_status]
        jitter_btn.click(lambda res, n, std, s: studio.manipulate("jitter", res, n=n, std=std, seed=int(s or 0)),
                         [last, jitter_n, jitter_std, seed], manip_out, concurrency_limit=None)
        morph_btn.click(morph, [last, morph_example, morph_upload, morph_frames, method, steps, seed], manip_out,
                        concurrency_limit=None)
        transfer_btn.click(lambda res, ks: studio.manipulate("transfer", res, classes=ks or []), [last, targets],
                           manip_out, concurrency_limit=None)
    return app
