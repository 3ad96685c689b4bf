"""Bringing your own images: declare (`pipeline inspect --write`: the params blocks of a dataset), params_editing
(params.yaml edited in place, comments kept), shapes (`pipeline make-images`: a generated photo folder to try it on)."""
