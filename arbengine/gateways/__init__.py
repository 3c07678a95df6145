"""Live order gateways: each venue's signed order entry behind the ``orders.Gateway``
contract the paper gateway also implements.

``base`` holds what all venues share (life cycle, retries, rate-limit feedback, time sync,
the venue-neutral ``VenueOrder``/``Balance`` shapes); each venue module holds its requests,
its signing calls (``venues.signing``) and the mapping of its states and error codes.
"""
