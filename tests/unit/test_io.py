"""Tests of the read/write stage on real files written with PyAV into tmp_path (no mocks)."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from digital_mask.errors import InputError, OutputError
from digital_mask.io import (
    VideoWriter,
    check_output_path,
    default_output_path,
    iter_frames,
    probe_video,
    write_png,
)

REAL_CLIP = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos" / "single_face.mp4"
VFR_PTS = [1500, 4500, 7000, 10000, 16000, 17000, 30000, 31000]  # irregular, first pts != 0
TB_90K = Fraction(1, 90000)
MAX_MEAN_ABS_ERROR = 3.0  # grey levels, H.264 at crf 18 on a smooth image


def gradient(height: int, width: int, shift: int = 0) -> np.ndarray:
    """Smooth synthetic RGB image, (height, width, 3) uint8, distinct per ``shift``."""
    y, x = np.mgrid[0:height, 0:width]
    r = 40 + 150 * x / max(width - 1, 1)
    g = 40 + 150 * y / max(height - 1, 1)
    b = np.full_like(r, 60 + 10 * shift)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def write_clip(path: Path, pts: list[int], time_base: Fraction = TB_90K,
               size: tuple[int, int] = (96, 80)) -> list[np.ndarray]:
    """Write a clip with our writer; return the frames written."""
    width, height = size
    frames = [gradient(height, width, i) for i in range(len(pts))]
    with VideoWriter(path, width, height, time_base, None) as writer:
        for rgb, p in zip(frames, pts):
            writer.write(rgb, p)
    return frames


def write_raw_clip(path: Path, frames: list[np.ndarray], *, rotation: int = 0,
                   options: dict[str, str] | None = None) -> None:
    """Write a clip with plain PyAV (for inputs our writer never produces)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w", options=options or {}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# --------------------------------------------------------------------------- writer


def test_variable_frame_rate_pts_read_back_exactly(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mp4"
    write_clip(path, VFR_PTS)

    info = probe_video(path)
    frames = list(iter_frames(path))

    assert info.time_base == TB_90K
    assert [f.pts for f in frames] == VFR_PTS
    assert [f.index for f in frames] == list(range(len(VFR_PTS)))
    expected_s = [float((p - VFR_PTS[0]) * TB_90K) for p in VFR_PTS]
    assert [f.time_s for f in frames] == pytest.approx(expected_s, abs=1e-9)


def test_coarse_time_base_keeps_frame_times_in_seconds(tmp_path: Path) -> None:
    path = tmp_path / "tb30.mp4"
    pts = [3, 4, 5, 7, 8, 11]
    write_clip(path, pts, time_base=Fraction(1, 30))

    info = probe_video(path)
    absolute_s = [float(f.pts * info.time_base) for f in iter_frames(path)]

    assert absolute_s == pytest.approx([p / 30 for p in pts], abs=1e-9)


def test_output_frames_match_input(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    written = write_clip(path, VFR_PTS)

    frames = list(iter_frames(path))

    assert len(frames) == len(written)
    for frame, rgb in zip(frames, written):
        assert frame.rgb.shape == rgb.shape and frame.rgb.dtype == np.uint8
        assert mean_abs_error(frame.rgb, rgb) < MAX_MEAN_ABS_ERROR


def test_output_has_no_metadata_and_no_audio(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    write_clip(path, VFR_PTS)

    data = path.read_bytes()
    for marker in (b"Lavf", b"x264", b"Lavc"):
        assert marker not in data
    assert probe_video(path).has_audio is False
    with av.open(str(path)) as container:
        assert len(container.streams) == 1
        assert "encoder" not in container.metadata


def test_odd_size_is_padded_to_even(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    written = write_clip(path, [0, 1, 2], time_base=Fraction(1, 30), size=(97, 81))

    info = probe_video(path)
    first = next(iter_frames(path))

    assert (info.width, info.height) == (98, 82)
    assert mean_abs_error(first.rgb[:81, :97], written[0]) < MAX_MEAN_ABS_ERROR


def test_exception_inside_with_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(tmp_path / "out.mp4", 64, 64, TB_90K, Fraction(30)) as writer:
            writer.write(gradient(64, 64), 0)
            raise RuntimeError("boom")

    assert os.listdir(tmp_path) == []


def test_bad_writes_raise_and_leave_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pts must increase"):
        with VideoWriter(tmp_path / "out.mp4", 64, 64, TB_90K, None) as writer:
            writer.write(gradient(64, 64), 10)
            writer.write(gradient(64, 64), 10)
    with pytest.raises(ValueError, match="expected shape"):
        with VideoWriter(tmp_path / "out.mp4", 64, 64, TB_90K, None) as writer:
            writer.write(gradient(64, 66), 0)
    with pytest.raises(OutputError, match="no frames"):
        with VideoWriter(tmp_path / "out.mp4", 64, 64, TB_90K, None):
            pass

    assert os.listdir(tmp_path) == []


def test_writer_counts_frames_and_replaces_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 64, 64, TB_90K, Fraction(30)) as writer:
        for i, p in enumerate(VFR_PTS):
            writer.write(gradient(64, 64, i), p)
        assert writer.frames_written == len(VFR_PTS)
        assert not path.exists()  # only the hidden temp file until the end

    assert os.listdir(tmp_path) == ["out.mp4"]
    assert probe_video(path).codec == "h264"


# --------------------------------------------------------------------------- reader


def test_rotated_phone_video_comes_out_upright(tmp_path: Path) -> None:
    path = tmp_path / "phone.mp4"
    upright = [gradient(96, 64, i) for i in range(3)]  # portrait: 64 wide, 96 high
    upright[0][:20, :20] = 255  # a marker in the top-left corner
    coded = [np.ascontiguousarray(np.rot90(u, k=1)) for u in upright]  # stored landscape
    write_raw_clip(path, coded, rotation=-90)  # display: turn 90 degrees clockwise

    info = probe_video(path)
    frames = list(iter_frames(path))

    assert (info.width, info.height) == (64, 96)
    assert frames[0].rgb.shape == (96, 64, 3)
    assert frames[0].rgb.flags.c_contiguous
    for frame, rgb in zip(frames, upright):
        assert mean_abs_error(frame.rgb, rgb) < MAX_MEAN_ABS_ERROR


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.mp4: file not found"):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="file not found"):
        list(iter_frames(tmp_path / "missing.mp4"))


def test_probe_text_file_renamed_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are not video frames\n" * 20)

    with pytest.raises(InputError, match="notes.mp4: not a readable video"):
        probe_video(path)


def test_probe_audio_only_file(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    rate = 8000
    samples = (3000 * np.sin(2 * np.pi * 440 * np.arange(rate // 4) / rate)).astype(np.int16)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    with pytest.raises(InputError, match=r"voice.wav: no video stream \(audio only\?\)"):
        probe_video(path)


def test_probe_too_small_frames(tmp_path: Path) -> None:
    path = tmp_path / "tiny.mp4"
    write_raw_clip(path, [gradient(32, 32)] * 2)

    with pytest.raises(InputError, match="tiny.mp4: frames are 32x32 pixels"):
        probe_video(path)


def test_truncated_mp4_without_index_is_an_input_error(tmp_path: Path) -> None:
    # Our writer puts the index (moov) at the end: the first half is not a readable file.
    full, half = tmp_path / "full.mp4", tmp_path / "half.mp4"
    write_clip(full, list(range(0, 60 * 3000, 3000)), size=(128, 96))
    half.write_bytes(full.read_bytes()[: full.stat().st_size // 2])

    with pytest.raises(InputError, match="half.mp4: not a readable video"):
        probe_video(half)


def test_truncated_mp4_mid_stream_stops_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # With the index first (faststart), cutting the file loses frames mid-stream.
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(40)]
    full, half = tmp_path / "full.mp4", tmp_path / "half.mp4"
    write_raw_clip(full, frames, options={"movflags": "+faststart"})
    half.write_bytes(full.read_bytes()[: full.stat().st_size // 2])

    assert probe_video(half).frame_count == 40  # the index still declares every frame
    with caplog.at_level(logging.WARNING, logger="digital_mask.io"):
        decoded = list(iter_frames(half))

    assert 0 < len(decoded) < 40
    assert [f.index for f in decoded] == list(range(len(decoded)))
    assert "half.mp4" in caplog.text
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_still_png_is_probed_and_iterated(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    rgb = gradient(80, 120)
    Image.fromarray(rgb).save(path)

    info = probe_video(path)
    frames = list(iter_frames(path))

    assert info.is_image and info.frame_count == 1 and info.average_rate is None
    assert (info.width, info.height, info.time_base) == (120, 80, Fraction(1, 1))
    assert info.has_audio is False
    assert len(frames) == 1
    assert (frames[0].index, frames[0].pts, frames[0].time_s) == (0, 0, 0.0)
    np.testing.assert_array_equal(frames[0].rgb, rgb)


def test_jpeg_with_exif_orientation_comes_out_upright(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    upright = gradient(96, 64)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees counter-clockwise; viewers turn it back
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1))).save(path, quality=95, exif=exif)

    info = probe_video(path)
    (frame,) = iter_frames(path)

    assert (info.width, info.height) == (64, 96)
    assert mean_abs_error(frame.rgb, upright) < MAX_MEAN_ABS_ERROR


def test_broken_image_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"not a jpeg")

    with pytest.raises(InputError, match="photo.jpg: not a readable image"):
        probe_video(path)


@pytest.mark.skipif(not REAL_CLIP.exists(), reason="shared data clip not present")
def test_real_clip_with_audio() -> None:
    info = probe_video(REAL_CLIP)
    times = [f.time_s for f in iter_frames(REAL_CLIP)]

    assert info.has_audio and not info.is_image
    assert (info.width, info.height) == (640, 360)
    assert times[0] == 0.0
    assert np.all(np.diff(times) > 0)
    assert info.frame_count in (0, len(times))


# --------------------------------------------------------------------------- PNG and paths


def test_write_png_round_trips_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    rgb = gradient(70, 90)

    write_png(path, rgb)

    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)
    data = path.read_bytes()
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"tIME", b"eXIf"):
        assert chunk not in data
    assert os.listdir(tmp_path) == ["frame.png"]


def test_write_png_rejects_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected shape"):
        write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32))
    assert os.listdir(tmp_path) == []


def test_check_output_path(tmp_path: Path) -> None:
    video = tmp_path / "visit.mp4"
    video.write_bytes(b"x")
    out = tmp_path / "visit_masked.mp4"

    check_output_path(video, out, overwrite=False)  # new file: fine
    out.write_bytes(b"y")
    with pytest.raises(OutputError, match="--overwrite"):
        check_output_path(video, out, overwrite=False)
    check_output_path(video, out, overwrite=True)
    with pytest.raises(OutputError, match="would overwrite the input"):
        check_output_path(video, tmp_path / "." / "visit.mp4", overwrite=True)
    os.link(video, tmp_path / "hardlink.mp4")
    with pytest.raises(OutputError, match="would overwrite the input"):
        check_output_path(video, tmp_path / "hardlink.mp4", overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(video, tmp_path / "nowhere" / "out.mp4", overwrite=True)
    with pytest.raises(OutputError, match="is a directory"):
        check_output_path(video, tmp_path, overwrite=True)


def test_default_output_path() -> None:
    video = Path("clinic/visit.mp4")
    assert default_output_path(video, image=False) == Path("clinic/visit_masked.mp4")
    assert default_output_path(Path("visit.MOV"), image=False) == Path("visit_masked.mp4")
    assert default_output_path(Path("photo.jpg"), image=True) == Path("photo_masked.png")
