"""Chinese class names for zero-shot classification with Chinese-CLIP (data, plus the label file reader).

Chinese-CLIP evaluates CIFAR-10/100 on its Chinese ELEVATER release, whose dataset folders carry the class
names as ``label_cn.txt`` (one name per line, line i = class i; see its ``zeroshot_dataset.md``). Those files
ship with the datasets, not with the ``cn_clip`` package, so:

* when a dataset folder has a ``label_cn.txt``, its names are used (``read_label_cn``): Chinese-CLIP's own;
* otherwise CIFAR-10/100 get the names below. They are ms_clip's translations, in the order of the CIFAR
  pickles' label names; Chinese-CLIP's documentation confirms only the first two CIFAR-10 names
  ("飞机", "汽车"), so results with them may differ slightly from Chinese-CLIP's published numbers.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

from ms_clip.data.captions import DataError
from ms_clip.eval.templates import CIFAR10_CLASSNAMES, CIFAR100_CLASSNAMES

__all__ = ["CIFAR10_CLASSNAMES_ZH", "CIFAR100_CLASSNAMES_ZH", "LABEL_CN_FILE", "read_label_cn", "chinese_classnames"]

LABEL_CN_FILE = "label_cn.txt"

CIFAR10_CLASSNAMES_ZH: Tuple[str, ...] = ("飞机", "汽车", "鸟", "猫", "鹿", "狗", "青蛙", "马", "船", "卡车")

CIFAR100_CLASSNAMES_ZH: Tuple[str, ...] = (
    "苹果", "观赏鱼", "婴儿", "熊", "河狸", "床", "蜜蜂", "甲虫", "自行车", "瓶子",
    "碗", "男孩", "桥", "公共汽车", "蝴蝶", "骆驼", "罐头", "城堡", "毛毛虫", "牛",
    "椅子", "黑猩猩", "钟", "云", "蟑螂", "沙发", "螃蟹", "鳄鱼", "杯子", "恐龙",
    "海豚", "大象", "比目鱼", "森林", "狐狸", "女孩", "仓鼠", "房子", "袋鼠", "键盘",
    "台灯", "割草机", "豹", "狮子", "蜥蜴", "龙虾", "男人", "枫树", "摩托车", "山",
    "老鼠", "蘑菇", "橡树", "橙子", "兰花", "水獭", "棕榈树", "梨", "皮卡车", "松树",
    "平原", "盘子", "罂粟花", "豪猪", "负鼠", "兔子", "浣熊", "鳐鱼", "公路", "火箭",
    "玫瑰", "大海", "海豹", "鲨鱼", "鼩鼱", "臭鼬", "摩天大楼", "蜗牛", "蛇", "蜘蛛",
    "松鼠", "有轨电车", "向日葵", "甜椒", "桌子", "坦克", "电话", "电视", "老虎", "拖拉机",
    "火车", "鳟鱼", "郁金香", "乌龟", "衣柜", "鲸鱼", "柳树", "狼", "女人", "蠕虫",
)

_BY_ENGLISH: Dict[Tuple[str, ...], Tuple[str, ...]] = {
    tuple(CIFAR10_CLASSNAMES): CIFAR10_CLASSNAMES_ZH,
    tuple(CIFAR100_CLASSNAMES): CIFAR100_CLASSNAMES_ZH,
}


def read_label_cn(dataset_dir: str, num_classes: Optional[int] = None) -> Optional[List[str]]:
    """The names in ``<dataset_dir>/label_cn.txt`` (or its parent's), or None when there is no such file.

    Raises DataError naming the file when it is not UTF-8, has an empty line among the names, or holds a
    number of names other than ``num_classes``.
    """
    for folder in (dataset_dir, os.path.dirname(os.path.abspath(dataset_dir))):
        path = os.path.join(folder, LABEL_CN_FILE)
        if os.path.isfile(path):
            break
    else:
        return None
    from ms_clip.data.captions import _read_lines

    lines = _read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    empty = [i + 1 for i, name in enumerate(names) if not name]
    if empty:
        raise DataError(f"{path}:{empty[0]}: empty class name (one name per line, line i = class i)")
    if num_classes is not None and len(names) != num_classes:
        raise DataError(f"{path}: {len(names)} class names for a dataset of {num_classes} classes")
    return names


def chinese_classnames(english: Sequence[str], dataset_dir: Optional[str] = None) -> Optional[List[str]]:
    """Chinese names for a dataset's classes: its ``label_cn.txt`` if there is one, else the CIFAR-10/100
    translations when ``english`` is exactly CIFAR's list; None when neither applies."""
    if dataset_dir:
        names = read_label_cn(dataset_dir, len(english))
        if names is not None:
            return names
    known = _BY_ENGLISH.get(tuple(english))
    return list(known) if known is not None else None
