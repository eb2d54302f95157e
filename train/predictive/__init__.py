"""Networks and losses of the predictive-coding pretext tasks: CPC on video segments (``cpc``) and Dense
Predictive Coding (``dpc``); pure torch modules the methods in ``train.methods`` wire up."""
