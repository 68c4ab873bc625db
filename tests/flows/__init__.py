"""Tests of portal.flows, laid out like the package."""
