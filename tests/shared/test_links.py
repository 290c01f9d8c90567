from shared import links

U1 = "U" + "1" * 32
U2 = "U" + "2" * 32


def test_link_is_two_way_and_queues_the_line_user(r, keys):
    assert links.link(r, keys, "crm-1", U1, now_ms=5)
    assert links.external_ids(r, keys, U1) == ["crm-1"]
    assert links.line_user(r, keys, "crm-1") == U1
    assert r.zscore(keys.outbox_ready, U1) == 5
    assert not links.link(r, keys, "crm-1", U1, now_ms=6)  # already so


def test_relinking_moves_the_external_id(r, keys):
    links.link(r, keys, "crm-1", U1, now_ms=1)
    links.link(r, keys, "crm-2", U1, now_ms=1)
    links.link(r, keys, "crm-1", U2, now_ms=1)
    assert links.external_ids(r, keys, U1) == ["crm-2"]
    assert links.external_ids(r, keys, U2) == ["crm-1"]


def test_unlink(r, keys):
    links.link(r, keys, "crm-1", U1, now_ms=1)
    assert links.unlink(r, keys, "crm-1")
    assert links.external_ids(r, keys, U1) == [] and not r.hexists(keys.links_line, U1)
    assert not links.unlink(r, keys, "crm-1")


def test_links_work_in_a_pipeline(r, keys):
    p = r.pipeline(transaction=False)
    for i in range(3):
        links.link(p, keys, f"crm-{i}", U1, now_ms=1)
    assert p.execute() == [1, 1, 1]
    assert links.external_ids(r, keys, U1) == ["crm-0", "crm-1", "crm-2"]


def test_check_pair():
    assert links.check_pair("crm-1", U1) is None
    assert "LINE user id" in links.check_pair("crm-1", "U123")
    assert links.check_pair("", U1) == "external_id is empty"


def test_csv_rows_report_line_numbers():
    rows = list(links.read_csv_text(f"external_id,native_line_id\ncrm-1,{U1}\n\ncrm-2,bad\nonly-one\n"))
    assert [(r.line, r.error is None) for r in rows] == [(2, True), (4, False), (5, False)]
    assert list(links.read_csv_text("a,b\n"))[0].error.startswith("header")
