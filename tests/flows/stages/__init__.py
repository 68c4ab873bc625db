"""Tests of portal.flows.stages: one module per stage type, driven without HTTP."""
