# CA-MKD: teachers with a lower task loss on the ground truth weigh more.
weighting = dict(type='ConfidenceWeighting')
