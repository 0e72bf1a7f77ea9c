"""Unit-test setup.

Synthetic scenes (``_synthetic.Scene``) are a perfect landmark detector: MediaPipe's quirks on our
rendered template, which ``fitting.PRIMARY_GAZE_OFFSET_CM`` calibrates away, do not exist there,
so geometry tests run with that calibration at zero (a test of the constant itself sets it). Nor
do they lag the head as MediaPipe's landmark filter does, so the pose is read without
``fitting.POSE_LEAD_FRAMES`` (its own test sets it).
"""

import numpy as np
import pytest

from digital_mask import fitting


@pytest.fixture(autouse=True)
def _no_template_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fitting, "PRIMARY_GAZE_OFFSET_CM", np.zeros((2, 2)))
    monkeypatch.setattr(fitting, "POSE_LEAD_FRAMES", 0.0)
