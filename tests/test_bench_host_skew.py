"""``bench.host_skew``'s layout: feeds concentrated on a few hosts, each host's feeds listed together."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from bench.feedfarm import FeedFarm
from bench.host_skew import layout


def test_groups_give_each_host_its_feeds_in_list_order() -> None:
    hosts, names = layout(["2x3", "3x1"])
    assert hosts == [0, 0, 0, 1, 1, 1, 2, 3, 4]
    assert names == ["2x3"] * 6 + ["3x1"] * 3


def test_a_farm_serves_each_feed_from_the_host_it_was_given() -> None:
    feed_hosts, _ = layout(["1x3", "2x1"])
    with FeedFarm(len(feed_hosts), 3, network="127.0.16", feed_hosts=feed_hosts) as farm:
        assert [farm.host_index(i) for i in range(5)] == [0, 0, 0, 1, 2]
        assert farm.feed_url(2).startswith(farm.base_url(0))
        with urllib.request.urlopen(farm.feed_url(2), timeout=5) as response:
            assert response.status == 200
        wrong_host = farm.feed_url(2).replace(farm.base_url(0), farm.base_url(1))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(wrong_host, timeout=5)
        assert refused.value.code == 404
    with pytest.raises(ValueError, match="feed_hosts"):
        FeedFarm(2, 2, feed_hosts=[0, 2])
