"""Gates: health checks after steps and waves, with analysis semantics (interval, count, failure
limit; Successful / Failed / Inconclusive / Error)."""
