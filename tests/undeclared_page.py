"""A news page in Chinese whose language nothing declares (no ``lang`` attribute, no ``Content-Language``): only
a language identifier can name it. Shared by the enrichment tests of the extraction workers and of shard tasks."""

BODY = (
    "据台湾“中央灾害应变中心”消息，台湾东部花莲县近海14日上午发生6.1级地震，目前已造成至少7人死亡、186人受伤。"
    "地震发生于当地时间8时42分，震源深度18公里，震中位于花莲市东南方约22公里海域。花莲市区有两栋住宅楼发生倾斜，"
    "苏花公路及通往太鲁阁国家公园的道路多处发生落石坍方。消防部门称，截至中午已从受损建筑中救出34人。"
    "台铁东部干线暂停运行，工程人员正在检查隧道安全。2024年4月，花莲曾发生7.2级地震，造成18人死亡。"
)
PAGE = f"""<html><head><meta charset="utf-8"><title>台湾花莲发生6.1级地震 已致至少7人死亡</title></head>
<body><article><h1>台湾花莲发生6.1级地震 已致至少7人死亡</h1><p>{BODY}</p><p>{BODY}</p></article></body></html>"""
