# Multi-teacher KD on Shapes-COCO from teachers of two dense-head families: the two
# RetinaNets (3 anchors per location, like the student) and a GFL (one anchor,
# IoU-aware scores), with equal teacher weights (AVER). Head KD compares the GFL's
# scores with the student's best anchor at each location (DenseDetectionView's rule
# for heads of other layouts); every teacher also teaches through the FPN features,
# each level through a ConvAdapter per (teacher, level). Train the GFL teacher with
#   python tools/train.py configs/detection/teachers/gfl_r34_w32_coco_shapes.py
# and export it with tools/export_student.py to work_dirs/coco_shapes/teachers/.
_base_ = ['../../_base_/distill/coco_shapes_two_teachers.py', '../../_base_/methods/aver.py']
teacher_dir = 'work_dirs/coco_shapes/teachers'
model = dict(
    teachers=[
        dict(name='r34w32',
             config='{{fileDirname}}/../teachers/retinanet_r34_w32_coco_shapes.py',
             checkpoint=teacher_dir + '/retinanet_r34_w32.pth'),
        dict(name='r50w16',
             config='{{fileDirname}}/../teachers/retinanet_r50_w16_coco_shapes.py',
             checkpoint=teacher_dir + '/retinanet_r50_w16.pth'),
        dict(name='gfl_r34w32',
             config='{{fileDirname}}/../teachers/gfl_r34_w32_coco_shapes.py',
             checkpoint=teacher_dir + '/gfl_r34_w32.pth'),
    ],
    weighting=_base_.pop('weighting'))
