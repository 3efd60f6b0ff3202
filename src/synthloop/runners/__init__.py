"""Execution: the local runner (asyncio for teacher calls). A Ray runner comes in a later issue."""
