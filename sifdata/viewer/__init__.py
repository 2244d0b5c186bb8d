"""The viewer: static sites that page through items with their focus boxes drawn
(:mod:`sifdata.viewer.site`), for dataset builds (:mod:`sifdata.viewer.build`) and, in
``sifeval``, for evaluation runs."""

from sifdata.viewer.site import (
    FocusBox,
    Panel,
    Picture,
    SiteReport,
    ViewItem,
    read_data_file,
    serve_site,
    write_site,
)

__all__ = [
    "FocusBox",
    "Panel",
    "Picture",
    "SiteReport",
    "ViewItem",
    "read_data_file",
    "serve_site",
    "write_site",
]
