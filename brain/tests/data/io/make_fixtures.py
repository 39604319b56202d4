"""Writes the small .npy / NIfTI fixtures of brain/tests/io_*.rs with NumPy and nibabel.

Run from this folder: python3 make_fixtures.py (numpy, nibabel). The files are
committed, so the tests need no Python.
"""
import numpy as np
import nibabel as nib

base = (np.arange(12, dtype=np.float64).reshape(3, 4) - 5.0) * 0.25
np.save("f4.npy", base.astype(np.float32))
np.save("f8.npy", base)
np.save("f2.npy", base.astype(np.float16))
np.save("i2.npy", (np.arange(12).reshape(3, 4) * 150 - 600).astype(np.int16))
for v in [(1, 0), (2, 0), (3, 0)]:
    with open(f"v{v[0]}.npy", "wb") as f:
        np.lib.format.write_array(f, base.astype(np.float32), version=v)
np.save("fortran.npy", np.asfortranarray(base.astype(np.float32)))
np.save("i8.npy", np.arange(12, dtype=np.int64).reshape(3, 4))
np.save("bool.npy", np.arange(12).reshape(3, 4) % 2 == 0)
np.save("big_endian.npy", base.astype(">f4"))
np.save("scalar.npy", np.float32(1.5))

# A 3-D mask whose value encodes its index: v = 100 x + 10 y + z, minus 150 so some are
# negative; NIfTI stores x fastest, NumPy walks z fastest: the test checks both agree.
x, y, z = np.meshgrid(np.arange(5), np.arange(4), np.arange(3), indexing="ij")
vol = (100 * x + 10 * y + z - 150).astype(np.int16)
np.save("mask_xyz.npy", vol)
# What np.save(path, nib.load(f).dataobj) writes: a Fortran-ordered file.
np.save("mask_xyz_fortran.npy", np.asfortranarray(vol))
img = nib.Nifti1Image(vol, np.diag([1.8, 1.8, 1.8, 1.0]))
nib.save(img, "mask_xyz.nii.gz")
# Same with scaling in the header: stored int16, scl_slope 0.5, scl_inter 1.
img = nib.Nifti1Image(vol, np.diag([1.8, 1.8, 1.8, 1.0]))
img.header.set_slope_inter(0.5, 1.0)
nib.save(img, "mask_xyz_scaled.nii")
expected = np.asarray(nib.load("mask_xyz_scaled.nii").dataobj).astype(np.float32)
np.save("mask_xyz_scaled_expected.npy", np.ascontiguousarray(expected))
