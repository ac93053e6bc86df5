"""retroscope.train"""
