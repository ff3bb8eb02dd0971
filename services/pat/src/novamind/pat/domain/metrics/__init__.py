"""Clinical sleep and circadian metrics computed from activity counts.

Input everywhere: ``Recording.activity``, a ``pd.Series`` of counts per epoch on a regular
``DatetimeIndex`` of local epoch start times (NaN = missing). Outputs are plain floats, small
frozen dataclasses, or 0/1 Series on the input's index. Nothing here logs, reads settings or
does I/O.

Modules, by topic:

- :mod:`.circadian` - IS, IV (and ISm/IVm, ISp/IVp), L5, M10, RA, ADAT, kRA/kAR, cosinor.
- :mod:`.scoring` - Cole-Kripke, Sadeh, Scripps, Oakley sleep/wake scoring; Crespo and
  Roenneberg rest detection. **1 = sleep/rest, 0 = wake/activity** for every function.
- :mod:`.sleep` - per-night TST, SE, SOL, WASO, awakenings; timing variability; SRI; sleep
  midpoint; main rest periods; daily totals, wear time and valid days.

Errors and undefined values: malformed input (no ``DatetimeIndex``, fewer than two epochs, an
irregular grid, an epoch that does not fit the algorithm) raises
``novamind.core.errors.ValidationError``. A metric that the data leave undefined is NaN, not an
error: IS and IV of constant activity, kRA/kAR with fewer than three bout lengths. L5, M10 and
RA are ``None`` when the recording does not cover every clock time of a day (files shorter than
24 h); ADAT is ``None`` when no calendar day remains.

Validation against pyActigraphy 1.2.2
-------------------------------------

The tests compare every number in ``shared/data/actigraphy/pyactigraphy_reference.json`` that
these modules compute, on all six reference recordings. IS, IV, ISm, IVm, ISp, IVp, L5, M10,
RA, ADAT, kRA, kAR, the cosinor (where the reference fit converged), Cole-Kripke ("mean",
with and without Webster rescoring), Scripps, Oakley (40 and automatic), Roenneberg, Crespo,
SRI, sleep midpoint, fSoD, Roenneberg bout lengths and the per-night sleep report agree to
floating-point precision, except where a convention differs on purpose:

=================================  ===================  ===================  ====
number (example_01 unless named)   ours                 pyActigraphy 1.2.2   note
=================================  ===================  ===================  ====
Sadeh, % of epochs scored sleep    51.61                51.73                1
SRI from Sadeh                     52.49                53.13                1
sleep midpoint from Sadeh (min)    112.80               113.98               1
night 24-25 Jan, CK: time in bed   480 min, SE 94.58 %  481 min, SE 94.59 %  2
Crespo, % of epochs scored 1       42.68 (rest)         42.68                3
rpx: CK 30 s max, % sleep          39.48                42.21                4
mtn: CK mean, % sleep              64.84 (5-s epochs)   64.73 (minutes)      5
rpx: sleep midpoint from CK (min)  86.17                85.92                5
example_02: cosinor amplitude      179.83, peak 13:41   8.5e-11, peak 03:25  6
mtn: cosinor amplitude             34.249               34.252               6
example_02: M10 onset, binarised   08:23                08:24                7
=================================  ===================  ===================  ====

1. Sadeh: we use the published log term ln(A_t + 1) and NAT counting 50 <= A < 100;
   pyActigraphy takes the log of epoch t+1 and counts 50 < A < 100.
2. Our rest window is [in bed, out of bed); pyActigraphy's also holds the epoch that starts at
   out of bed. With that epoch added, every per-night number matches exactly.
3. The reference calls Crespo's 1 "activity", but its counts and its onset/offset times are
   ours epoch for epoch with 1 = rest.
4. Cole et al. publish W0 = 121; pyActigraphy codes 12. ``PYACTIGRAPHY_COLE_KRIPKE_30S_MAX``
   reproduces 42.21 exactly.
5. Cole-Kripke scores whole minutes; we give every epoch its minute's score, so on sub-minute
   epochs a partial last minute weighs less and epochs sit up to 45 s after their minute start.
6. pyActigraphy's non-linear fit stalled (amplitude 0 on example_02; short of the optimum on
   mtn, both at the mesor >= 0 bound); ours is the least-squares optimum, with a smaller
   residual.
7. Equal window sums; the first tie wins and rounding decides which is first.

Conventions kept from pyActigraphy because the published definitions leave them open: sample
variances (ddof=1) in IS/IV (IS of identical days is (24d - 1) / (23d), slightly above 1);
bins anchored on the first epoch with the partial last bin kept; binarisation (count > 4)
before resampling; L5/M10 on native epochs from the mean profile by clock time, wrapping past
midnight; ADAT extrapolating partial days; centred windows that score the first and last
epochs wake; Webster's rules read as in pyActigraphy; SRI averaging per clock time.
"""
