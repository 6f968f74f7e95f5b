# Fixed teacher weights, normalised to sum to 1. The weights are one per teacher, in
# the teachers' order, so each task's config sets them:
#   model = dict(weighting=dict(_base_.pop('weighting'), weights=[0.6, 0.4]))
weighting = dict(type='FixedWeighting')
