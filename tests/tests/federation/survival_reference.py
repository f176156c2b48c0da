"""The reference libraries on the pooled rows of a CSV (group, stratum,
time, event, cause), as JSON: lifelines' Kaplan-Meier curve of each group
(Greenwood's sum, the log-log interval, the median with its interval, the
restricted mean up to HORIZON) and multivariate log-rank test across
groups; statsmodels' log-rank test stratified by `stratum` (survdiff) and
cumulative incidence of cause 1 with cause 2 competing
(CumIncidenceRight).

Usage: survival_reference.py ROWS.csv HORIZON
"""
import json
import math
import sys
import warnings

import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import median_survival_times, restricted_mean_survival_time
from statsmodels.duration.survfunc import CumIncidenceRight, survdiff

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
    out = {"curves": {str(g): curve(rows[rows["group"] == g], horizon) for g in groups}}
    multi = multivariate_logrank_test(rows["time"], rows["group"], rows["event"])
    out["logrank"] = {"statistic": float(multi.test_statistic), "p_value": float(multi.p_value),
                      "df": int(multi.degrees_of_freedom)}
    chisq, p = survdiff(rows["time"].to_numpy(), rows["event"].to_numpy(),
                        rows["group"].to_numpy(), strata=rows["stratum"].to_numpy())
    out["stratified"] = {"statistic": float(chisq), "p_value": float(p)}
    ci = CumIncidenceRight(rows["time"].to_numpy(), rows["cause"].to_numpy())
    out["incidence"] = {
        "times": [float(t) for t in ci.times],
        "cinc": [float(v) for v in ci.cinc[0]],
        "se": [finite(v) for v in ci.cinc_se[0]],
    }
    json.dump(out, sys.stdout)


main()
