"""Outbound network access: the guarded HTTP fetcher (media_pub.net.fetch) for shows moving in.

Nothing is re-exported here on purpose: a package attribute named `fetch` would shadow the module
`media_pub.net.fetch`, so import from the module: `from media_pub.net.fetch import fetch, fetch_to_file`.
"""
