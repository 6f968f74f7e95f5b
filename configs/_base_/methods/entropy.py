# EBKD: teachers with confident (low-entropy) predictions weigh more.
weighting = dict(type='EntropyWeighting')
