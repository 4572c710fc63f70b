"""spectrogram against scipy.signal.spectrogram, scalogram against pywt.cwt and the analytic
response of the Morlet filter bank to a sine; shapes, hop averaging, batching and errors."""

import math

import numpy as np
import pytest
import torch
from scipy import signal as scipy_signal

from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.signals import morlet_frequencies, plot_time_frequency, scalogram, spectrogram

RATE = 128.0


@pytest.fixture(scope="module")
def noise():
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(2, 1000, 3)).cumsum(axis=1) * 0.1 + rng.normal(size=(2, 1000, 3))
    ).astype(np.float32)


@pytest.mark.parametrize(
    ("window_length", "hop_length", "n_fft"),
    [(64, 16, None), (63, 20, None), (64, 32, 128), (50, 10, 75)],
)
def test_spectrogram_equals_scipy(noise, window_length, hop_length, n_fft):
    tf = spectrogram(noise, RATE, window_length=window_length, hop_length=hop_length, n_fft=n_fft)
    f, t, reference = scipy_signal.spectrogram(
        noise,
        RATE,
        window="hann",
        nperseg=window_length,
        noverlap=window_length - hop_length,
        nfft=n_fft,
        detrend=False,
        axis=1,
    )  # fmt: skip  (reference: (N, F, C, K))
    assert tf.values.shape == (2, 3, f.size, t.size)
    assert np.allclose(tf.frequencies, f) and np.allclose(tf.times, t)
    expected = np.moveaxis(reference, 2, 1)
    assert np.allclose(tf.values.numpy(), expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_spectrogram_of_a_sine_peaks_at_its_frequency_with_its_power():
    t = np.arange(2048) / RATE
    x = (2.0 * np.sin(2 * np.pi * 20.0 * t))[:, None]
    tf = spectrogram(x, RATE, window_length=128, hop_length=64)
    density = tf.values[0].mean(-1).numpy()
    assert tf.frequencies[density.argmax()] == 20.0
    # the density integrates to the sine's power A^2 / 2 = 2
    assert density.sum() * (tf.frequencies[1] - tf.frequencies[0]) == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize("normalization", ["l1", "l2"])
def test_scalogram_equals_the_wavelet_transform_summed_directly(noise, normalization):
    """W(s, b) = sum_n x[n] conj(psi((n - b) / s)) / norm(s), psi the cmor1.5-1.0 wavelet."""
    x = noise[0, :, 1].astype(np.float64)
    frequencies = np.array([40.0, 12.8, 3.0, 1.25])
    tf = scalogram(noise[0], RATE, frequencies=frequencies, normalization=normalization)
    n, b = np.arange(x.size), np.arange(0, x.size, 37)
    for row, f in enumerate(frequencies):
        s = RATE / f
        t = (n[None, :] - b[:, None]) / s
        psi = np.exp(-(t**2) / 1.5) * np.exp(2j * np.pi * t) / np.sqrt(np.pi * 1.5)
        norm = s / 2 if normalization == "l1" else np.sqrt(s)
        direct = np.abs((x[None, :] * np.conj(psi)).sum(axis=1)) / norm
        # at 40 Hz (scale 3.2 samples) the filter's Gaussian reaches the Nyquist frequency,
        # where the sampled wavelet's spectrum folds over: 0.1 % apart there
        tolerance = 5e-3 if f > 32 else 1e-4
        assert np.allclose(tf.values[1, row, b].numpy(), direct, rtol=tolerance,
                           atol=tolerance * direct.max() / 10)  # fmt: skip


def test_scalogram_l2_agrees_with_pywavelets_cwt():
    """pywt.cwt resamples an integrated wavelet on a grid, a few per cent off the transform
    (more at scales under ~10 or over ~60 samples); at the scales in between the two agree within 5 %."""
    pywt = pytest.importorskip("pywt")
    rng = np.random.default_rng(1)
    x = rng.normal(size=2000) + 2 * np.sin(2 * np.pi * 3.0 * np.arange(2000) / RATE)
    frequencies = np.array([8.0, 5.0, 3.0, 2.5])  # scales 16 to 51 samples
    tf = scalogram(x[:, None], RATE, frequencies=frequencies, normalization="l2")
    coefficients, pywt_frequencies = pywt.cwt(x, 1.0 * RATE / frequencies, "cmor1.5-1.0",
                                              sampling_period=1 / RATE, method="fft")  # fmt: skip
    assert np.allclose(pywt_frequencies, frequencies, rtol=1e-6)
    reference = np.abs(coefficients)
    mine = tf.values[0].numpy()
    for row in range(len(frequencies)):
        assert np.abs(mine[row] - reference[row]).max() < 0.05 * reference[row].max()


@pytest.mark.parametrize("frequency", [3.0, 10.0, 30.0])
def test_scalogram_l1_gives_a_sine_its_amplitude_at_its_frequency(frequency):
    t = torch.arange(2048) / RATE
    x = (1.7 * torch.cos(2 * math.pi * frequency * t + 0.3))[:, None]
    tf = scalogram(x, RATE, frequencies=[frequency, frequency * 2, frequency / 2])
    middle = tf.values[0, :, 900:1100]
    assert torch.allclose(middle[0], torch.full((200,), 1.7), rtol=2e-3)
    # the Gaussian filter at an octave away: exp(-pi^2 B (s f - C)^2), with s f = 1/2 or 2
    octave_up = 1.7 * math.exp(-(math.pi**2) * 1.5 * 0.25)
    assert float(middle[1].mean()) == pytest.approx(octave_up, rel=0.02)
    assert float(middle[2].mean()) < 1e-3


def test_scalogram_batches_hops_and_default_frequencies(noise):
    full = scalogram(noise, RATE, num_frequencies=12)
    assert full.values.shape == (2, 3, 12, 1000)
    assert np.allclose(full.frequencies, morlet_frequencies(RATE, None, 12))
    assert full.frequencies[0] == 32.0 and full.frequencies[-1] == 1.0
    one = scalogram(noise[1], RATE, num_frequencies=12)
    assert torch.allclose(full.values[1], one.values, rtol=1e-4, atol=1e-5)
    small = scalogram(noise, RATE, num_frequencies=12, hop_length=8, batch_size=2)
    assert small.values.shape == (2, 3, 12, 125)
    expected = full.values.reshape(2, 3, 12, 125, 8).mean(-1)
    assert torch.allclose(small.values, expected, rtol=1e-4, atol=1e-5)
    assert small.times[0] == pytest.approx(3.5 / RATE)
    assert "scalogram" in repr(small)
    figure = plot_time_frequency(small, index=0, channel=2)
    assert figure.axes[0].get_yscale() == "log"


def test_bad_input_gives_clear_errors():
    with pytest.raises(DataError, match=r"must be real \(T, C\) or \(N, T, C\).*\(100,\)"):
        spectrogram(np.zeros(100), RATE)
    with pytest.raises(
        DataError, match=r"`window_length` \(64 samples\) is longer than the signal \(32"
    ):
        spectrogram(np.zeros((32, 2)), RATE)
    with pytest.raises(OptionError, match="`n_fft` \\(32\\) must be >= `window_length` \\(64\\)"):
        spectrogram(np.zeros((128, 2)), RATE, n_fft=32)
    with pytest.raises(OptionError, match=r"`frequencies` must be in \(0, 64\] Hz"):
        scalogram(np.zeros((128, 2)), RATE, frequencies=[100.0])
    with pytest.raises(OptionError, match=r"`frequency_range` must be \(low, high\)"):
        scalogram(np.zeros((128, 2)), RATE, frequency_range=(10.0, 1.0))
    with pytest.raises(OptionError, match="`normalization` must be 'l1'"):
        scalogram(np.zeros((128, 2)), RATE, normalization="max")
    with pytest.raises(OptionError, match="`sampling_rate` must be a positive number"):
        scalogram(np.zeros((128, 2)), 0)
    with pytest.raises(OptionError, match="pick one with index="):
        plot_time_frequency(scalogram(np.zeros((2, 64, 1)), RATE, num_frequencies=4))
