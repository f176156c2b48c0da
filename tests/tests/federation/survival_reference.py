"""lifelines on the pooled rows of a CSV (group, time, event): each group's
Kaplan-Meier curve with Greenwood's sum and the log-log interval, its
median with the interval, and the restricted mean up to HORIZON, as JSON.

Usage: survival_reference.py ROWS.csv HORIZON
"""
import json
import math
import sys
import warnings

import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times, restricted_mean_survival_time

warnings.simplefilter("ignore")


def finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


def curve(rows, horizon):
    kmf = KaplanMeierFitter().fit(rows["time"], event_observed=rows["event"])
    sf = kmf.survival_function_.iloc[:, 0]
    ci = kmf.confidence_interval_
    keep = sf.index > 0
    median_ci = median_survival_times(kmf.confidence_interval_)
    return {
        "times": [float(t) for t in sf.index[keep]],
        "survival": [float(v) for v in sf[keep]],
        "greenwood": [float(v) for v in kmf._cumulative_sq_[keep]],
        "lower": [float(v) for v in ci.iloc[:, 0][keep]],
        "upper": [float(v) for v in ci.iloc[:, 1][keep]],
        "median": finite(kmf.median_survival_time_),
        "median_lower": finite(median_ci.iloc[0, 0]),
        "median_upper": finite(median_ci.iloc[0, 1]),
        "rmst": float(restricted_mean_survival_time(kmf, t=horizon)),
    }


def main():
    rows = pd.read_csv(sys.argv[1])
    horizon = float(sys.argv[2])
    groups = sorted(rows["group"].unique())
    print(json.dumps({str(g): curve(rows[rows["group"] == g], horizon) for g in groups}))


main()
